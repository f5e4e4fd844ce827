"""The ``push`` section: the served model's name and the TF Serving directory it goes to.

Owned by graft.components.pusher. No TensorFlow here.
"""

from __future__ import annotations

from dataclasses import dataclass

from graft.settings import check_safe_name


@dataclass
class PushConfig:
    model_name: str = "graft"
    # TF Serving model base directory; models go to <serving_root>/<model_name>/<version>/.
    # Empty: <root>/serving.
    serving_root: str = ""

    def validate(self) -> None:
        check_safe_name(self.model_name, "push.model_name")

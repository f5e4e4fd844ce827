"""Graft's text ExampleGen: a custom TFX FileBasedExampleGen (Beam) for text classification data.

Import :class:`~graft.components.text_example_gen.component.TextExampleGen` from ``.component`` (it imports TFX);
``rows`` and ``layout`` are cheap to import.
"""

"""Graft's image ExampleGen: a custom TFX FileBasedExampleGen (Beam) for image files.

Import :class:`~graft.components.image_example_gen.component.ImageExampleGen` from ``.component`` (it imports TFX);
``layout`` and ``files`` are cheap to import.
"""

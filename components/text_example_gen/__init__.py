"""TextExampleGen: text classification data (manifests, GLUE split folders, class folders of .txt, TFRecords) in."""

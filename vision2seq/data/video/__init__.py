"""Videos: reading files and frame folders (``reader``: the entry point; ``container``: PyAV, ``frames``:
frame folders, ``shared``: their error and limits), clip sampling into tensors (``clips``), the
classification datasets' layouts (``datasets``) and loaders with the feature cache (``loaders``), and
the video-caption datasets (``caption_records``) and loaders (``caption_loaders``)."""

"""Offline data preparation, run by tools/ before training: splitting large DOTA images into
patches (:mod:`.dota_split`), writing the synthetic DOTA-like quick-start dataset
(:mod:`.synthetic_dota`) and the COCO-format shapes of the open-vocabulary quick start
(:mod:`.synthetic_coco`), with their shared ``manifest.json`` check (:mod:`.manifest`).
Nothing here is needed to train or test."""

"""Data augmentation: waveform ops (:mod:`.ops`), the offline augmented store
(:mod:`.offline`) and online batch transforms on torch tensors (:mod:`.online`).

Submodules are imported explicitly (``from melflow.augment.online import mixup``) so that
importing one does not pull in the others' heavy dependencies (torch, Dask).
"""

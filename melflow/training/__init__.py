"""Training from Zarr feature stores: chunk-aware batches and a resumable training loop."""

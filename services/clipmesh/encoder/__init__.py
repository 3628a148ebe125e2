"""The encoder service: open_clip embeddings of images and texts, batched across requests."""

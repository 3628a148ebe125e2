"""The ingest core: one video file to shot-aware segments, keyframes and vectors in the index.

One implementation for everything that puts video into the library: the orchestrator's
IngestVideos (a batch of files under the allowed roots, with progress) and previs (the clips
it generated). Files are untrusted whatever their origin: `paths` keeps reads inside the
allowed roots, `media` probes and decodes within byte, pixel, duration and time limits,
`frames` decodes only what the analysis and the keyframes need, `shots` plans the segments,
and `video.VideoIngester` runs the steps and writes the result through the encoder's and the
index's typed clients.
"""

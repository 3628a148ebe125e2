"""Media every service takes in, handled one way: untrusted video files and images opened
within limits, decoded only as far as needed, cut into shot-aware segments, and ingested into
the index.

Files are untrusted whatever their origin. `paths` keeps reads inside the allowed roots,
`probe` opens and checks a video within byte, pixel, duration and time limits, `images` is
the shape rule every still-image intake applies, `frames` decodes only what the analysis and
the keyframes need, `shots` plans the segments, and `ingest.VideoIngester` runs the steps for
one file and writes the result through the encoder's and the index's typed clients — the one
ingest the orchestrator's IngestVideos and previs's clips share.
"""

"""clipmesh: find videos (and the moment inside them) by image, text or clip; generate video;
turn scripts into previs cuts. Four gRPC services on one shared runtime."""

__version__ = "0.1.0"

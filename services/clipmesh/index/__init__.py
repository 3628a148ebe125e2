"""The index service: durable video segments with their vectors, searched for moments."""

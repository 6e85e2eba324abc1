"""The eight lifecycle stages, each a typed function over explicit inputs."""

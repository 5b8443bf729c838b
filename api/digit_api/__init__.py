"""The digit recognition API."""

# The service's own version: OpenAPI's info.version and the Open Inference Protocol's server
# metadata. Not the model's version (GET /model) nor LiteRT's.
__version__ = "1.1.0"

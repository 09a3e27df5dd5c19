"""The contract between services: event schemas, subject names, settings. Change with care."""

"""Vectors: the store port and its adapters, feature extractors, copy-on-write views."""

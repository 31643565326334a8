"""Data selection: per-example scores, scorers that compute them, selectors that prune."""

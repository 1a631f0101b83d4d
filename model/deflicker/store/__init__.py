"""The on-disk analysis cache shared by every process: entries, keys and locks."""

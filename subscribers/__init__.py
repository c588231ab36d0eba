"""The subscriber store: who reads the newsletter, on which channel, in which format."""

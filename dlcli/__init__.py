"""dlcli: deep learning for NLP and faces from the command line."""

__version__ = "0.1.0"

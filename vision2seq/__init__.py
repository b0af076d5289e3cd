"""vision2seq: pretrained torchvision CNN encoders with LSTM decoders for captions and video labels."""

__version__ = "0.1.0"

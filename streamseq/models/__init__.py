"""Recurrent frame models and their checkpoint format."""

from streamseq.models.checkpoint import CheckpointError, load_model, save_checkpoint
from streamseq.models.config import ModelConfig
from streamseq.models.recurrent import BidirectionalRNN, FrameModel, StreamingRNN, build_model

__all__ = [
    "BidirectionalRNN", "CheckpointError", "FrameModel", "ModelConfig", "StreamingRNN",
    "build_model", "load_model", "save_checkpoint",
]

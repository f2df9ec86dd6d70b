"""Recurrent frame models and their checkpoint format."""

from streamseq.models.checkpoint import CheckpointError, load_model, save_checkpoint
from streamseq.models.config import ModelConfig
from streamseq.models.gru import BidirectionalGRU, FrameModel, StreamingGRU, build_model

__all__ = [
    "BidirectionalGRU", "CheckpointError", "FrameModel", "ModelConfig", "StreamingGRU",
    "build_model", "load_model", "save_checkpoint",
]

"""Conditioner networks."""
from .convnet import ConvNet
from .embedding import EMBEDDINGS, CNNEmbedding, MLPEmbedding, register_embedding
from .made import MADE, MaskedLinear
from .mlp import MLP
from .vector_field import FlatTimeMLP, TimeMLP, TimeUNet

__all__ = ["EMBEDDINGS", "MADE", "MLP", "CNNEmbedding", "ConvNet", "FlatTimeMLP", "MLPEmbedding", "MaskedLinear", "TimeMLP", "TimeUNet", "register_embedding"]

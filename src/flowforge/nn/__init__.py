"""Conditioner networks."""
from .convnet import ConvNet
from .embedding import EMBEDDINGS, CNNEmbedding, MLPEmbedding, register_embedding
from .made import MADE, MaskedLinear
from .mlp import MLP

__all__ = ["EMBEDDINGS", "MADE", "MLP", "CNNEmbedding", "ConvNet", "MLPEmbedding", "MaskedLinear", "register_embedding"]

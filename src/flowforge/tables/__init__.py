"""Mixed tables (text categories, counts, positive and bounded columns, dates, blank cells) with
an exact likelihood on the original scale: TableFlow, Schema, infer_schema, GaussianBaseline."""
from .baseline import GaussianBaseline
from .infer import infer_schema
from .model import TableFlow
from .schema import Column, Schema

__all__ = ["Column", "GaussianBaseline", "Schema", "TableFlow", "infer_schema"]

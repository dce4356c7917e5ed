"""Sources of tables: the extractor contract and the Airtable extractor."""

from app.extractors.airtable import AirtableExtractor
from app.extractors.base import Page, TabularExtractor

__all__ = ["AirtableExtractor", "Page", "TabularExtractor"]

"""Reusable Textual widgets for Pilothouse. They take plain data (dicts as the daemon sends them)
and never import the daemon or its client."""

from widgets.keyed_table import Column, KeyedTable
from widgets.output_log import OutputLog
from widgets.panels import ApprovalBanner, ApprovalCard, GpuStrip, LinkStatus, RunHeader
from widgets.tables import ApprovalInbox, NetFeed, RunsTable

__all__ = [
    "ApprovalBanner", "ApprovalCard", "ApprovalInbox", "Column", "GpuStrip", "KeyedTable",
    "LinkStatus", "NetFeed", "OutputLog", "RunHeader", "RunsTable",
]

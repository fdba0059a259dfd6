"""The curation report: the reward-margin curve, the rounds and the queue, as one HTML page.

``load_report_data`` reads a project's registry folder into :class:`ReportData`;
``render_report`` turns it into the page (``rlthf_backend.app.report.build_report`` does both;
``rlthf-backend report`` writes the page, ``GET /report?project=ID`` serves it).
"""

from rlthf_backend.report.data import ReportData, load_report_data
from rlthf_backend.report.html import render_report

__all__ = ["ReportData", "load_report_data", "render_report"]

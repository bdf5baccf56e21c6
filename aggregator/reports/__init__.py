"""Scheduled reports: the daily report (日报), monthly statistics (月度统计) and the bulletin
(通报); see ``docs/reports.md``."""

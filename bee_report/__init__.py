"""bee_report: the workstation side of bee.

Reads recordings (through bee_record's codec), finds binaries by build-id, symbolizes,
and renders reports; one module per reporter under `bee_report.reporters`.
"""

"""Evaluation metrics and reports (verification EER/minDCF/DET, identification, …)."""

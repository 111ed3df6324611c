"""Data for training and evaluation: JSONL manifests, dataset builders and synthetic corpora.

Builders run offline on any machine (DESIGN §4): nothing here downloads data.
"""

"""The QA runner (ask, score, report), the QA gate (compare two models) and candidate generation."""

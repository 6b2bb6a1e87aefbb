"""Training: the run's settings (`config`), the data path (`batches`), the loop (`loop`), the whole
run (`train`), MLflow (`tracking`), metrics, plots and the MLM item (`mlm`)."""

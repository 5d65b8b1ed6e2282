"""The log writer: stores what the appender's batches logged (see ``base``)."""

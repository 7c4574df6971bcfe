"""v4 streaming: Kafka events in (stream produce, ingest.kafka) and a real-time scorer.

confluent-kafka is imported inside functions only: `churnctl --help` never loads it.
"""

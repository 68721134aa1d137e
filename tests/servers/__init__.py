"""Real servers on 127.0.0.1 for backend tests: moto (S3), fake-gcs-server (GCS), and a fault-injecting proxy."""

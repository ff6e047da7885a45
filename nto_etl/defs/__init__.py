"""Dagster definitions: assets, checks, resources, schedules and sensors. No business logic lives here."""

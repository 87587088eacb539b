"""Shared machinery: media access, storage, jobs, features, nets and converters. Never imports upward."""

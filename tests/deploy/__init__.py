"""Deployment files: Dockerfile, docker-compose.yml, Procfile and .env.example."""

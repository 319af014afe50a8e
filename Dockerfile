# seisfacies image: one image for the scheduler, the workers and the runner.
# CPU build by default; build with --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124
# for the GPU variant (docker-compose.gpu.yml).
FROM python:3.11-slim
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN useradd --create-home --uid 1000 seisfacies
WORKDIR /opt/seisfacies
COPY pyproject.toml README.md ./
COPY pipeline pipeline
COPY models models
COPY workflows workflows
RUN pip install --index-url "$TORCH_INDEX" torch && pip install ".[s3]" bokeh
USER seisfacies
WORKDIR /data

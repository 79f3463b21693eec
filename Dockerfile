# Two images from one file, both with the same code:
#   docker build --target api .     the api: no torch (it never imports it), a small image
#   docker build --target worker .  training and inspect workers and Flower: the `worker` extra
#                                   (torch, transformers); pip resolves a CUDA build of torch
#                                   from PyPI on linux/x86_64 for `torch>=2.4`
FROM python:3.11-slim AS base
WORKDIR /app
ENV PYTHONUNBUFFERED=1 DISTILLSCOPE_DATA_DIR=/data
COPY pyproject.toml README.md LICENSE ./
COPY backend backend
COPY worker worker
COPY frontend frontend
VOLUME /data

FROM base AS worker
RUN pip install --no-cache-dir -e ".[worker,monitoring]"
CMD ["distillscope", "worker", "--queues", "train"]

# Last, so that a plain `docker build .` makes the api image.
FROM base AS api
RUN pip install --no-cache-dir -e .
EXPOSE 8000
CMD ["distillscope", "api", "--host", "0.0.0.0", "--port", "8000"]

# One image for the api and the worker. The worker needs a CUDA build of torch, which pip
# resolves from PyPI on linux/x86_64 for `torch>=2.4`.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 DISTILLSCOPE_DATA_DIR=/data
COPY pyproject.toml README.md LICENSE ./
COPY backend backend
COPY worker worker
COPY frontend frontend
RUN pip install --no-cache-dir -e ".[monitoring]"
VOLUME /data
EXPOSE 8000
CMD ["distillscope", "api", "--host", "0.0.0.0", "--port", "8000"]

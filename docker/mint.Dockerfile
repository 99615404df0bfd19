# A Nutshell mint with the FakeWallet backend: it marks every Lightning invoice paid by itself.
# For trying nutgate out and for development only: its ecash is worth nothing.
# Same pins as `make install` uses for the dev mint (0.21 cannot resolve its dependencies).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN pip install "cashu==0.20.2" "marshmallow<4" "limits<5"

RUN groupadd --system --gid 10002 mint \
    && useradd --system --uid 10002 --gid mint --home-dir /data --no-create-home mint \
    && mkdir -p /data \
    && chown mint:mint /data

ENV MINT_BACKEND_BOLT11_SAT=FakeWallet \
    FAKEWALLET_DELAY_INCOMING_PAYMENT=0 \
    MINT_LISTEN_HOST=0.0.0.0 \
    MINT_LISTEN_PORT=3338 \
    MINT_DATABASE=/data/mint \
    MINT_AUTH_DATABASE=/data/mint \
    CASHU_DIR=/data/cashu \
    MINT_INPUT_FEE_PPK=0 \
    MINT_RATE_LIMIT=false

USER mint
WORKDIR /data
VOLUME ["/data"]
EXPOSE 3338

HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=6 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:3338/v1/keysets', timeout=4).status != 200)"]

CMD ["python", "-m", "cashu.mint"]

"""The Hugging Face Hub: whether it answers. Without a reachable Hub, from_pretrained and load_dataset retry for about
a minute and end in a traceback; offline mode makes them use the local cache or fail at once, which the scripts turn
into one line. Called before transformers or datasets is imported, which read offline mode once."""
import base64
import contextlib
import os
import socket
import threading


def go_offline_without_hub(timeout=3.0):
    """Offline mode where the Hub does not answer within seconds. The probe takes the road huggingface_hub would: HF_ENDPOINT's host and port, through the proxy that HTTPS_PROXY,
    HTTP_PROXY, ALL_PROXY and NO_PROXY name for it."""
    if not os.environ.get("HF_HUB_OFFLINE", "") and not hub_reachable(timeout):
        os.environ["HF_HUB_OFFLINE"] = "1"


def hub_reachable(timeout=3.0):
    """Whether the Hub answers within timeout seconds, by the road huggingface_hub would take. A road this cannot
    test (a SOCKS proxy, TLS to the proxy itself, an HF_ENDPOINT that is no URL) counts as reachable."""
    import http.client
    import urllib.request
    from urllib.parse import unquote, urlparse
    hub = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    if not hub.hostname:  # not a URL: the library that reads it says so
        return True
    port = hub.port or (443 if hub.scheme == "https" else 80)
    proxy = None if urllib.request.proxy_bypass_environment(hub.hostname) else \
        urllib.request.getproxies_environment().get(hub.scheme) or urllib.request.getproxies_environment().get("all")
    proxy = urlparse(proxy if proxy is None or "://" in proxy else f"http://{proxy}") if proxy else None
    if proxy and proxy.scheme != "http":  # SOCKS, or TLS to the proxy itself: no simple test, so stay online
        return True
    reached = []

    def probe():  # getaddrinfo has no timeout of its own, so the probe runs in a thread we stop waiting for
        with contextlib.suppress(OSError, http.client.HTTPException):
            if proxy and hub.scheme == "https":  # the proxy opens a tunnel to the Hub (CONNECT), as for any request
                connection = http.client.HTTPConnection(proxy.hostname, proxy.port or 80, timeout=timeout)
                login = f"{unquote(proxy.username or '')}:{unquote(proxy.password or '')}".encode()
                connection.set_tunnel(f"[{hub.hostname}]" if ":" in hub.hostname else hub.hostname, port,
                                      headers={"Proxy-Authorization": "Basic " + base64.b64encode(login).decode()}
                                      if proxy.username else None)
                connection.connect()
                connection.close()
            elif proxy:  # a plain-http endpoint goes to the proxy as a request, with no tunnel: the proxy must answer
                socket.create_connection((proxy.hostname, proxy.port or 80), timeout=timeout).close()
            else:
                socket.create_connection((hub.hostname, port), timeout=timeout).close()
            reached.append(True)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(reached)



"""The Hugging Face Hub: whether it answers. Without a reachable Hub, from_pretrained and load_dataset retry for about
a minute and end in a traceback; offline mode makes them use the local cache or fail at once, which the scripts turn
into one line. Called before transformers or datasets is imported, which read offline mode once."""
import os
import threading


def go_offline_without_hub(timeout=3.0):
    """Offline mode where the Hub does not answer within `timeout` seconds."""
    if not os.environ.get("HF_HUB_OFFLINE", "") and not hub_reachable(timeout):
        os.environ["HF_HUB_OFFLINE"] = "1"  # for datasets and transformers, which read it when first imported
        from huggingface_hub import constants
        constants.HF_HUB_OFFLINE = True  # huggingface_hub read it already, when the probe imported it


def hub_reachable(timeout=3.0):
    """Whether a request to HF_ENDPOINT gets through, sent by huggingface_hub's own HTTP session, so by the road any
    Hub request takes: the user's proxies (HTTPS_PROXY, ALL_PROXY, NO_PROXY; SOCKS too), their certificates. A
    peer that answers in a way TLS cannot read (a stub, an interception proxy) was reached: the library says more."""
    import errno
    import socket
    import sys

    from huggingface_hub import constants
    from huggingface_hub.utils import close_session, get_session
    close_session()  # the session reads the proxies when it is made: made now, from the environment as it is
    session = get_session()
    was_offline, constants.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE, False  # a probe asked for is sent
    http = sys.modules[type(session).__module__.split(".")[0]]  # httpx, or the fork huggingface_hub ships with
    endpoint = os.environ.get("HF_ENDPOINT") or constants._HF_DEFAULT_ENDPOINT
    reached = []

    def probe():  # name resolution has no timeout of its own, so the probe runs in a thread we stop waiting for
        try:
            session.head(endpoint, timeout=timeout, follow_redirects=False)
            reached.append(True)
        except (http.ProxyError, http.TimeoutException):
            pass  # a dead proxy, a proxy refusing the tunnel, or nothing answering in time
        except http.ConnectError as e:
            root = e
            while root.__cause__ or root.__context__:
                root = root.__cause__ or root.__context__
            # refused, unresolvable or unroutable: nothing there. Anything else failed after a peer took the
            # connection (a TLS stub, an interception proxy): the road is open, and the library will say more
            if not (isinstance(root, (ConnectionRefusedError, socket.gaierror))
                    or getattr(root, "errno", None) in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL)):
                reached.append(True)
        except Exception:  # a road this cannot judge (SOCKS without socksio, an endpoint that is no URL)
            reached.append(True)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    constants.HF_HUB_OFFLINE = was_offline
    return bool(reached)

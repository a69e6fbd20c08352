"""Redis with authentication and TLS: nodes and commands as the ACL users of docs/redis.md.

The users are created from the rules docs/redis.md shows (read out of it, so the two
cannot drift), on a private redis-server whose ``default`` user is disabled. Nodes crawl
as ``baike-node``; ``scrapy status|export|deadletters|metrics|reset`` run as ``baike-ops``; Redis
must refuse nothing (``ACL LOG`` stays empty) and no password may show anywhere.
Also here: :func:`baike.connection.get_redis` (one client per crawler, the TLS settings)
and :class:`baike.connection.RedisClock`.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from scrapy import Request
from scrapy.settings import Settings

from baike import settings as project_settings
from baike.connection import RedisClock, RedisSettingsError, get_redis
from baike.extensions.closespider import ClusterCloseSpider
from baike.extensions.clusterstats import ClusterStats
from baike.frontier import serializer
from baike.frontier.dupefilter import BucketDupeFilter
from baike.keys import CrawlKeys
from baike.pipelines import RedisStorePipeline
from baike.spiders.baike import BaikeSpider
from baike.status import STOPPED
from tests.conftest import ROOT, free_port
from tests.frontier_helpers import make_crawler

KEYS = CrawlKeys.for_spider("baike")
DOCS = ROOT / "docs" / "redis.md"
BUDGET = 60
# what the rules in docs/redis.md write instead of a password
PLACEHOLDERS = {"baike-node": ">NODE-PASSWORD", "baike-ops": ">OPS-PASSWORD"}


# -- the rules of docs/redis.md -----------------------------------------------------------


def documented_rule(marker: str) -> list[str]:
    """The words of the ``ACL SETUSER`` line in the code block after ``<!-- acl:<marker> -->``."""
    text = DOCS.read_text(encoding="utf-8")
    match = re.search(rf"<!-- acl:{re.escape(marker)} -->\n```\n(ACL SETUSER [^\n]+)\n```", text)
    assert match, f"docs/redis.md has no ACL rule marked acl:{marker}"
    return shlex.split(match.group(1))


def set_documented_user(client: redis.Redis, user: str, password: str, cluster: bool = False) -> None:
    """Create (or reset) ``user`` (``baike-node`` or ``baike-ops``) with exactly the rule of
    docs/redis.md and ``password``, plus the documented ``client|setinfo`` on Redis 7.2+ and,
    with ``cluster``, the documented rule of a Redis Cluster's masters."""
    marker = {"baike-node": "node", "baike-ops": "operator"}[user]
    words = documented_rule(marker)
    assert words[:3] == ["ACL", "SETUSER", user]
    rule = [f">{password}" if word == PLACEHOLDERS[user] else word for word in words[3:]]
    client.execute_command("ACL", "SETUSER", user, *rule)
    version = tuple(int(part) for part in client.info("server")["redis_version"].split(".")[:2])
    if version >= (7, 2):
        client.execute_command("ACL", "SETUSER", user, *documented_rule("node-7.2")[3:])
    if cluster:
        client.execute_command("ACL", "SETUSER", user, *documented_rule("cluster")[3:])


def test_the_operators_rule_is_the_nodes_and_more() -> None:
    node, operator = documented_rule("node"), documented_rule("operator")
    node_rules = set(node[3:]) - {PLACEHOLDERS["baike-node"]}
    operator_rules = set(operator[3:]) - {PLACEHOLDERS["baike-ops"]}
    assert node_rules < operator_rules
    flush_rules = set(documented_rule("node-flush")[3:])
    assert flush_rules <= operator_rules, "a node that flushes at start needs nothing an operator may not run"
    assert "-@all" in node_rules and "~baike:*" in node_rules and "resetchannels" in node_rules
    assert not any(rule.startswith("+@") or rule in ("allkeys", "~*", "allcommands") for rule in operator_rules)


# -- a private redis-server with ACL users (and TLS) ---------------------------------------


@dataclass
class TlsFiles:
    """A CA, a server certificate for ``server_ips`` (127.0.0.1 unless told; each an IP
    entry of its subjectAltName, as redis-py checks) and a client certificate, PEM files
    in ``directory``."""

    directory: Path
    server_ips: tuple[str, ...] = ("127.0.0.1",)

    def __post_init__(self) -> None:
        now = datetime.datetime.now(datetime.UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = self._certificate("baike test CA", ca_key.public_key(), ca_key, now, ca=True)
        self._write("ca", ca)
        server_key = ec.generate_private_key(ec.SECP256R1())
        names = [*(x509.IPAddress(ipaddress.ip_address(ip)) for ip in self.server_ips), x509.DNSName("localhost")]
        self._write(
            "server",
            self._certificate(
                self.server_ips[0],
                server_key.public_key(),
                ca_key,
                now,
                issuer=ca,
                usage=ExtendedKeyUsageOID.SERVER_AUTH,
                names=names,
            ),
            server_key,
        )
        client_key = ec.generate_private_key(ec.SECP256R1())
        self._write(
            "client",
            self._certificate(
                "baike-node", client_key.public_key(), ca_key, now, issuer=ca, usage=ExtendedKeyUsageOID.CLIENT_AUTH
            ),
            client_key,
        )

    def path(self, name: str) -> Path:
        return self.directory / name

    @staticmethod
    def _certificate(
        common_name: str,
        public_key: Any,
        signer: Any,
        now: datetime.datetime,
        *,
        ca: bool = False,
        issuer: x509.Certificate | None = None,
        usage: Any = None,
        names: list[x509.GeneralName] | None = None,
    ) -> x509.Certificate:
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer.subject if issuer else subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if usage is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(signer, hashes.SHA256())

    def _write(self, stem: str, certificate: x509.Certificate, key: Any = None) -> None:
        self.path(f"{stem}.crt").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        if key is not None:
            self.path(f"{stem}.key").write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            )

    def client_settings(self) -> tuple[str, ...]:
        """The node's and the commands' ``-s`` settings for these files."""
        return (
            f"REDIS_SSL_CA_CERTS={self.path('ca.crt')}",
            f"REDIS_SSL_CERTFILE={self.path('client.crt')}",
            f"REDIS_SSL_KEYFILE={self.path('client.key')}",
        )


@dataclass
class AclRedis:
    """redis-server on a free loopback port with the ``default`` user disabled, an ``admin``
    user for the test, and ``baike-node`` and ``baike-ops`` with the documented rules."""

    directory: Path
    tls: TlsFiles | None = None
    port: int = field(default_factory=free_port)
    passwords: dict[str, str] = field(
        default_factory=lambda: {user: secrets.token_hex(12) for user in ("admin", "baike-node", "baike-ops")}
    )
    process: subprocess.Popen | None = None

    def start(self) -> AclRedis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server is not installed: run the README's setup, which installs it")
        args = [
            binary,
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--appendonly",
            "no",
            "--requirepass",
            self.passwords["admin"],
        ]
        if self.tls:
            args += [
                "--port",
                "0",
                "--tls-port",
                str(self.port),
                "--tls-cert-file",
                str(self.tls.path("server.crt")),
                "--tls-key-file",
                str(self.tls.path("server.key")),
                "--tls-ca-cert-file",
                str(self.tls.path("ca.crt")),
                "--tls-auth-clients",
                "yes",
            ]
        else:
            args += ["--port", str(self.port)]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait(self.client(username=None))
        self._create_users()
        return self

    def _wait(self, client: redis.Redis) -> None:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.05)

    def _create_users(self) -> None:
        """``admin`` may do anything; the baike users get exactly the documented rules; then
        the ``default`` user (whose password was the admin's) is switched off."""
        setup = self.client(username=None)
        setup.execute_command("ACL", "SETUSER", "admin", "on", f">{self.passwords['admin']}", "~*", "&*", "+@all")
        for user in ("baike-node", "baike-ops"):
            set_documented_user(setup, user, self.passwords[user])
        setup.execute_command("ACL", "SETUSER", "default", "off")
        setup.close()
        self.admin().acl_log_reset()

    def client(self, username: str | None = "admin", **kwargs: Any) -> redis.Redis:
        tls = {}
        if self.tls:
            tls = {
                "ssl": True,
                "ssl_ca_certs": str(self.tls.path("ca.crt")),
                "ssl_certfile": str(self.tls.path("client.crt")),
                "ssl_keyfile": str(self.tls.path("client.key")),
            }
        return redis.Redis(
            host="127.0.0.1", port=self.port, username=username, password=self.passwords["admin"], **tls, **kwargs
        )

    def admin(self) -> redis.Redis:
        return self.client("admin")

    def url(self, user: str) -> str:
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{user}:{self.passwords[user]}@127.0.0.1:{self.port}/0"

    def refused(self) -> list[dict]:
        """What Redis refused anyone since the users were made (``ACL LOG``)."""
        return self.admin().acl_log()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)


@pytest.fixture()
def acl_redis(tmp_path: Path):
    directory = tmp_path / "redis"
    directory.mkdir()
    server = AclRedis(directory).start()
    yield server
    server.stop()


@pytest.fixture()
def tls_redis(tmp_path: Path):
    directory = tmp_path / "tls-redis"
    directory.mkdir()
    server = AclRedis(directory, tls=TlsFiles(directory)).start()
    yield server
    server.stop()


def scrapy(redis_url: str, *args: str, settings: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """``scrapy <args>`` against ``redis_url`` with ``-s`` ``settings``."""
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    options = [word for setting in settings for word in ("-s", setting)]
    return subprocess.run(
        [sys.executable, "-m", "scrapy", *args, "-s", f"REDIS_URL={redis_url}", *options],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def scrape_metrics(redis_url: str) -> tuple[str, str]:
    """One scrape of ``scrapy metrics`` against ``redis_url``: (what it printed, the exposition)."""
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    process = subprocess.Popen(
        [sys.executable, "-m", "scrapy", "metrics", "--port", "0", "-s", f"REDIS_URL={redis_url}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        url = re.search(r"http://\S+/metrics", line)
        assert url, line + process.stderr.read()
        with urllib.request.urlopen(url.group(0), timeout=30) as answer:
            body = answer.read().decode()
    finally:
        process.terminate()
        process.wait(timeout=10)
    printed = line + process.stdout.read() + process.stderr.read()
    process.stdout.close()
    process.stderr.close()
    return printed, body


def responses(replica) -> int:
    """Answers the replica sent that a crawler receives as pages (redirects are followed, not received)."""
    return sum(count for status, count in replica.stats()["by_status"].items() if not status.startswith("3"))


def crawl_exactly_the_budget(server: AclRedis, replica, node_factory, nodes: int, *settings: str) -> list:
    """Crawl ``replica`` with ``nodes`` nodes as ``baike-node`` until the budget is spent;
    checks the exact budget and that every entry was downloaded and stored once."""
    admin = server.admin()
    admin.lpush(KEYS.start_urls, replica.start_url())
    started = [
        node_factory(server.url("baike-node"), replica.url, f"CLOSESPIDER_PAGECOUNT={BUDGET}", *settings)
        for _ in range(nodes)
    ]
    for node in started:
        errors = node.log_path.with_suffix(".err")
        assert node.wait(timeout=60) == 0, node.log[-3000:] + errors.read_text(errors="replace")[-3000:]
    assert [node.finish_reason for node in started] == ["closespider_pagecount"] * nodes
    assert int(admin.hget(KEYS.budget, "pages")) == BUDGET
    assert responses(replica) == BUDGET
    assert sum(node.stat("response_received_count") for node in started) == BUDGET
    assert max(replica.stats()["page_paths"].values()) == 1, "no entry is downloaded twice"
    stored = {key.decode() for key in admin.hkeys(KEYS.items)}
    assert len(stored) == replica.stats()["pages"] == sum(node.stat("item_scraped_count") for node in started)
    assert stored <= set(replica.answer_key(replica.start_url()))
    assert admin.zcard(KEYS.leases) == 0
    return started


def requeueable_letter() -> str:
    payload = json.loads(serializer.dumps(Request("https://baike.baidu.com/item/x/1").to_dict()))
    return json.dumps({"reason": "HTTP 503 after retries", "time": 1.0, "payload": payload})


# -- nodes and commands as ACL users ----------------------------------------------------------


@pytest.mark.e2e
def test_nodes_and_commands_as_acl_users_never_show_a_password(
    acl_redis, replica_factory, node_factory, tmp_path
) -> None:
    replica = replica_factory(300, 11)
    nodes = crawl_exactly_the_budget(acl_redis, replica, node_factory, 2)
    for node in nodes:
        assert f"joined the crawl at redis://baike-node:***@127.0.0.1:{acl_redis.port}/0" in node.log

    ops = acl_redis.url("baike-ops")
    admin = acl_redis.admin()
    shown: list[str] = []  # every output a person or a log file gets

    def run(*args: str) -> subprocess.CompletedProcess:
        result = scrapy(ops, *args)
        shown.extend((result.stdout, result.stderr))
        assert result.returncode == 0, result.stderr
        return result

    assert f"at redis://baike-ops:***@127.0.0.1:{acl_redis.port}/0: {STOPPED}" in run("status").stdout
    snap = json.loads(run("status", "--json").stdout)
    assert snap["state"] == STOPPED and snap["budget"]["pages"] == BUDGET and len(snap["nodes"]) == 2
    records = tmp_path / "items.jsonl"
    run("export", "-o", str(records))
    assert len(records.read_text(encoding="utf-8").splitlines()) == admin.hlen(KEYS.items)
    report = tmp_path / "report.html"
    run("export", "-o", str(report))
    admin.rpush(KEYS.dead, requeueable_letter())
    assert "1 dead letters in baike:dead" in run("deadletters").stdout
    printed, exposition = scrape_metrics(ops)
    shown.append(printed)
    assert "baike_redis_up 1.0" in exposition and "baike_exporter_read_ok 1.0" in exposition, printed
    assert (
        f"baike_budget_spent_pages {float(BUDGET)}" in exposition
        and 'baike_dead_letters{reason="http",status="503"} 1.0' in exposition
    )
    run("deadletters", "--requeue")
    assert admin.llen(KEYS.dead) == 0 and admin.hlen(KEYS.request_data) > 0
    run("export", "-o", str(tmp_path / "moved.jsonl"), "--delete")
    assert admin.hlen(KEYS.items) == 0
    run("reset", "--yes", "--force")
    assert list(admin.scan_iter(match="baike:*")) == []

    assert acl_redis.refused() == [], "Redis refused a command: the documented rule misses it"
    secrets_ = [acl_redis.passwords[user] for user in ("baike-node", "baike-ops")]
    outputs = {"status and export": "\n".join(shown), "report": report.read_text(encoding="utf-8")}
    for node in nodes:
        outputs[f"{node.log_path.name} (log and stats dump)"] = node.log
        outputs[f"{node.log_path.name} stderr"] = node.log_path.with_suffix(".err").read_text(errors="replace")
    for name, text in outputs.items():
        for password in secrets_:
            assert password not in text, f"a password shows in {name}"


@pytest.mark.e2e
def test_a_node_user_cannot_reset_the_crawl(acl_redis) -> None:
    acl_redis.admin().hset(KEYS.items, "https://baike.baidu.com/item/a/1", "{}")
    result = scrapy(acl_redis.url("baike-node"), "reset", "--yes", "--force")
    assert result.returncode == 1
    assert "reset failed:" in result.stderr and "permission" in result.stderr.lower()
    assert len(result.stderr.strip().splitlines()) == 1
    assert acl_redis.passwords["baike-node"] not in result.stderr + result.stdout
    assert acl_redis.admin().hlen(KEYS.items) == 1


@pytest.mark.e2e
def test_a_node_flushing_at_start_needs_the_documented_commands(acl_redis, replica_factory, node_factory) -> None:
    """SCHEDULER_FLUSH_ON_START: refused in one line with the node's rule alone; with the rule
    of docs/redis.md for such nodes it flushes an old crawl, and Redis refuses nothing."""
    replica = replica_factory(300, 13)
    admin = acl_redis.admin()
    admin.hset(KEYS.budget, "pages", BUDGET)  # an old crawl that spent its budget
    flushing = ("SCHEDULER_FLUSH_ON_START=True", "CLUSTERSTATS_LOST_AFTER=1")
    refused = node_factory(acl_redis.url("baike-node"), replica.url, *flushing)
    assert refused.wait(timeout=60) == 2, refused.log[-3000:]
    (line,) = refused.log_path.with_suffix(".err").read_text().splitlines()
    assert line.startswith("crawl: SCHEDULER_FLUSH_ON_START: could not flush the crawl at redis://baike-node:***@")
    assert "acl:node-flush in docs/redis.md" in line and acl_redis.passwords["baike-node"] not in line
    assert "Traceback" not in refused.log
    assert admin.hget(KEYS.budget, "pages") == str(BUDGET).encode(), "nothing was flushed"

    admin.execute_command("ACL", "SETUSER", "baike-node", *documented_rule("node-flush")[3:])
    deadline = time.monotonic() + 10
    while admin.exists(KEYS.flush) and time.monotonic() < deadline:
        time.sleep(0.1)  # the refused node could not give its guard back: it expires
    admin.acl_log_reset()
    (node,) = crawl_exactly_the_budget(acl_redis, replica, node_factory, 1, *flushing)
    assert "SCHEDULER_FLUSH_ON_START: flushed the crawl at" in node.log
    assert acl_redis.refused() == []


@pytest.mark.e2e
def test_nodes_crawl_over_tls_with_a_client_certificate(tls_redis, replica_factory, node_factory) -> None:
    replica = replica_factory(300, 12)
    tls = tls_redis.tls.client_settings()
    nodes = crawl_exactly_the_budget(tls_redis, replica, node_factory, 2, *tls)
    for node in nodes:
        assert f"joined the crawl at rediss://baike-node:***@127.0.0.1:{tls_redis.port}/0" in node.log
    status = scrapy(tls_redis.url("baike-ops"), "status", "--json", settings=tls)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["budget"]["pages"] == BUDGET
    assert tls_redis.refused() == []


def test_a_missing_tls_file_refuses_the_node_and_the_command_in_one_line(tmp_path) -> None:
    missing = tmp_path / "nowhere" / "ca.crt"
    settings = (f"REDIS_SSL_CA_CERTS={missing}",)
    url = f"rediss://baike-node:pw@127.0.0.1:{free_port()}/0"  # never reached
    crawl = scrapy(url, "crawl", "baike", settings=(*settings, "LOG_LEVEL=INFO"))
    assert crawl.returncode == 2, crawl.stderr[-3000:]
    refusals = [line for line in crawl.stderr.splitlines() if line.startswith("crawl:")]
    assert refusals == [
        f"crawl: REDIS_SSL_CA_CERTS={missing}: no such file (give the path of a PEM file, or leave it empty)"
    ]
    assert "Traceback" not in crawl.stderr
    status = scrapy(url, "status", settings=settings)
    assert status.returncode == 1
    assert (
        status.stderr.strip() == f"status: REDIS_SSL_CA_CERTS={missing}: no such file (give the path of a PEM"
        " file, or leave it empty)"
    )


# -- get_redis ------------------------------------------------------------------------------


def redis_settings(**values: Any) -> Settings:
    return Settings(
        {"REDIS_URL": "redis://127.0.0.1:1/0", "REDIS_PARAMS": dict(project_settings.REDIS_PARAMS), **values}
    )


def test_one_client_per_settings_object() -> None:
    settings, other = redis_settings(), redis_settings()
    assert get_redis(settings) is get_redis(settings)
    assert get_redis(other) is not get_redis(settings)
    first = get_redis(settings)
    settings.set("REDIS_URL", "redis://127.0.0.1:2/0")
    assert get_redis(settings) is not first, "changed settings get a client of their own"
    assert get_redis(settings).connection_pool.connection_kwargs["port"] == 2


def test_every_component_of_a_crawler_shares_one_client(redis_server, redis_db) -> None:
    crawler = make_crawler(redis_server.url)
    spider = BaikeSpider.from_crawler(crawler)
    servers = [
        spider.server,
        ClusterStats.from_crawler(crawler).server,
        ClusterCloseSpider.from_crawler(crawler).server,
        RedisStorePipeline.from_crawler(crawler).server,
        BucketDupeFilter.from_crawler(crawler).server,
    ]
    assert all(server is servers[0] for server in servers)
    assert spider.count_size.__self__ is servers[0], "scrapy-redis's seed reader uses it too"
    assert make_crawler(redis_server.url).settings is not crawler.settings
    assert get_redis(make_crawler(redis_server.url).settings) is not servers[0], "one client per crawler"


@pytest.mark.parametrize("seeds", ["REDIS_START_URLS_AS_SET", "REDIS_START_URLS_AS_ZSET"])
def test_the_spiders_seed_readers_use_the_shared_client(redis_server, redis_db, seeds: str) -> None:
    crawler = make_crawler(redis_server.url, **{seeds: True})
    spider = BaikeSpider.from_crawler(crawler)
    shared = get_redis(crawler.settings)
    assert spider.server is shared
    assert spider.count_size.__self__ is shared


def test_tls_files_go_to_redis_py(tmp_path) -> None:
    files = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key")}
    for path in files.values():
        path.write_text("not read before a connection")
    settings = redis_settings(
        REDIS_URL="rediss://u:p@127.0.0.1:6380/0",
        REDIS_SSL_CA_CERTS=str(files["ca"]),
        REDIS_SSL_CERTFILE=str(files["cert"]),
        REDIS_SSL_KEYFILE=str(files["key"]),
    )
    arguments = get_redis(settings).connection_pool.connection_kwargs
    assert (arguments["ssl_ca_certs"], arguments["ssl_certfile"], arguments["ssl_keyfile"]) == tuple(
        str(path) for path in files.values()
    )
    assert get_redis(redis_settings()).connection_pool.connection_kwargs.get("ssl_ca_certs") is None


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"REDIS_SSL_CA_CERTS": "{missing}"}, "REDIS_SSL_CA_CERTS={missing}: no such file"),
        ({"REDIS_SSL_CERTFILE": "{tmp}"}, "REDIS_SSL_CERTFILE={tmp}: no such file"),
        ({"REDIS_SSL_KEYFILE": "{file}"}, "REDIS_SSL_KEYFILE is set without REDIS_SSL_CERTFILE"),
        (
            {"REDIS_SSL_CA_CERTS": "{file}", "REDIS_URL": "redis://127.0.0.1:6379/0"},
            "REDIS_SSL_CA_CERTS set, but REDIS_URL is not a rediss:// URL",
        ),
    ],
)
def test_unusable_tls_settings_name_the_setting(tmp_path, values: dict[str, str], message: str) -> None:
    file = tmp_path / "ca.pem"
    file.write_text("x")
    names = {"missing": str(tmp_path / "missing.pem"), "tmp": str(tmp_path), "file": str(file)}
    settings = redis_settings(
        **{"REDIS_URL": "rediss://127.0.0.1:6380/0", **{name: value.format(**names) for name, value in values.items()}}
    )
    with pytest.raises(RedisSettingsError, match=re.escape(message.format(**names))):
        get_redis(settings)


# -- RedisClock -----------------------------------------------------------------------------


def test_redis_clock_is_local_time_plus_the_measured_offset_and_never_goes_back(monkeypatch) -> None:
    local = [1000.0]
    monkeypatch.setattr(time, "time", lambda: local[0])
    clock = RedisClock()
    assert clock.now() == 1000.0 and not clock.measured
    clock.update((910, 0), before=999.0, after=1001.0)  # Redis is 90 s behind: the local time was no floor
    assert clock.now() == 910.0
    clock = RedisClock()
    clock.update((1090, 500_000), before=999.0, after=1001.0)  # Redis is 90.5 s ahead
    assert clock.offset == 90.5 and clock.now() == 1090.5
    clock.update((1089, 0), before=1000.0, after=1000.0)  # a noisier measurement, 1.5 s less
    assert clock.now() == 1090.5, "never earlier than a time already given out"
    local[0] = 1003.0
    assert clock.now() == 1092.0

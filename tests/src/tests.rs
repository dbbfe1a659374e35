//! Tests of the kit itself, with plain `TcpStream` and rustls clients.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use crate::*;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use md5::{Digest as _, Md5};

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

enum ClientStream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Read for ClientStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ClientStream::Plain(s) => s.read(buf),
            ClientStream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for ClientStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            ClientStream::Plain(s) => s.write(buf),
            ClientStream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            ClientStream::Plain(s) => s.flush(),
            ClientStream::Tls(s) => s.flush(),
        }
    }
}

/// A minimal line-oriented client for exercising the servers.
struct Client {
    reader: BufReader<ClientStream>,
}

impl Client {
    fn connect(addr: SocketAddr) -> io::Result<Client> {
        Self::connect_waiting(addr, Duration::from_secs(10))
    }

    /// With a read timeout of `wait`.
    fn connect_waiting(addr: SocketAddr, wait: Duration) -> io::Result<Client> {
        let tcp = TcpStream::connect(addr)?;
        tcp.set_read_timeout(Some(wait))?;
        Ok(Client {
            reader: BufReader::new(ClientStream::Plain(tcp)),
        })
    }

    fn connect_tls(addr: SocketAddr, config: Arc<ClientConfig>, name: &str) -> TestResult<Client> {
        let tcp = TcpStream::connect(addr)?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
        let conn = ClientConnection::new(config, ServerName::try_from(name.to_owned())?)?;
        Ok(Client {
            reader: BufReader::new(ClientStream::Tls(Box::new(StreamOwned::new(conn, tcp)))),
        })
    }

    /// Upgrades a cleartext connection (after `+OK` to STLS).
    fn start_tls(self, config: Arc<ClientConfig>) -> TestResult<Client> {
        assert!(self.reader.buffer().is_empty(), "bytes after +OK to STLS");
        let ClientStream::Plain(tcp) = self.reader.into_inner() else {
            return Err("already TLS".into());
        };
        let conn = ClientConnection::new(config, ServerName::try_from("localhost")?)?;
        Ok(Client {
            reader: BufReader::new(ClientStream::Tls(Box::new(StreamOwned::new(conn, tcp)))),
        })
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let stream = self.reader.get_mut();
        stream.write_all(bytes)?;
        stream.flush()
    }

    fn line(&mut self) -> io::Result<String> {
        let mut bytes = Vec::new();
        self.reader.read_until(b'\n', &mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn command(&mut self, line: &str) -> io::Result<String> {
        self.send(format!("{line}\r\n").as_bytes())?;
        self.line()
    }

    /// Reads a multi-line body up to and including the terminator, raw.
    fn multiline_raw(&mut self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let start = out.len();
            if self.reader.read_until(b'\n', &mut out)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let line = &out[start..];
            if line == b".\r\n" || line == b".\n" {
                return Ok(out);
            }
        }
    }

    fn rest(&mut self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        match self.reader.read_to_end(&mut out) {
            Ok(_) => Ok(out),
            // a TLS peer that closes without close_notify
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(out),
            Err(e) => Err(e),
        }
    }
}

// ---------------------------------------------------------------- scripted

#[test]
fn scripted_exchange_records_the_transcript() -> TestResult {
    let server = ScriptedServer::start(Script::parse(
        "
        S: +OK ready <1.2@test>
        C: USER alice
        S: +OK
        C: PASS secret a
        S: +OK logged in
        C: QUIT
        S: +OK bye
        ",
    )?)?;
    let mut client = Client::connect(server.addr())?;
    assert_eq!(client.line()?, "+OK ready <1.2@test>\r\n");
    assert_eq!(client.command("USER alice")?, "+OK\r\n");
    assert_eq!(client.command("PASS secret a")?, "+OK logged in\r\n");
    assert_eq!(client.command("QUIT")?, "+OK bye\r\n");
    // the server closes after the script
    assert_eq!(client.rest()?, b"");
    drop(client);
    let transcript = server.finish()?;
    transcript.assert_complete();
    assert_eq!(
        transcript.received(),
        b"USER alice\r\nPASS secret a\r\nQUIT\r\n"
    );
    assert_eq!(transcript.received_lines().len(), 3);
    assert_eq!(
        transcript.sent(),
        b"+OK ready <1.2@test>\r\n+OK\r\n+OK logged in\r\n+OK bye\r\n"
    );
    assert_eq!(transcript.tls_offset(), None);
    assert!(transcript.mismatch().is_none());
    Ok(())
}

#[test]
fn scripted_mismatch_is_reported() -> TestResult {
    let server = ScriptedServer::start(Script::parse("S: +OK\nC: USER alice\nS: +OK")?)?;
    let mut client = Client::connect(server.addr())?;
    client.line()?;
    client.send(b"USER bob\r\n")?;
    // the server hangs up on a mismatch
    assert_eq!(client.rest()?, b"");
    let transcript = server.finish()?;
    assert!(!transcript.is_complete());
    let mismatch = transcript.mismatch().ok_or("no mismatch")?;
    assert_eq!(mismatch.step, 1);
    assert_eq!(mismatch.line, Some(2));
    assert_eq!(mismatch.expected, "USER alice\\r\\n");
    assert_eq!(mismatch.got, b"USER bob\r\n");
    assert!(mismatch.to_string().contains("script line 2"), "{mismatch}");
    assert_eq!(transcript.received(), b"USER bob\r\n");
    Ok(())
}

#[test]
fn scripted_requires_crlf() -> TestResult {
    let server = ScriptedServer::start(Script::new().send("+OK").expect("QUIT"))?;
    let mut client = Client::connect(server.addr())?;
    client.line()?;
    client.send(b"QUIT\n")?;
    let transcript = server.finish()?;
    let mismatch = transcript.mismatch().ok_or("no mismatch")?;
    assert_eq!(mismatch.got, b"QUIT\n");
    assert!(mismatch.note.contains("bare LF"), "{mismatch}");
    Ok(())
}

#[test]
fn scripted_timeout_reports_partial_line() -> TestResult {
    let server = ScriptedServer::builder(Script::new().send("+OK").expect("QUIT"))
        .read_timeout(Duration::from_millis(200))
        .start()?;
    let mut client = Client::connect(server.addr())?;
    client.line()?;
    client.send(b"QUI")?;
    let transcript = server.finish()?;
    let mismatch = transcript.mismatch().ok_or("no mismatch")?;
    assert_eq!(mismatch.got, b"QUI");
    assert!(mismatch.note.contains("timed out"), "{mismatch}");
    Ok(())
}

#[test]
fn scripted_raw_sleep_close_and_eof() -> TestResult {
    let server = ScriptedServer::start(Script::parse(
        r"
        S-RAW: +O
        SLEEP: 20
        S-RAW: K hi\r\n+OK 2 320\r\n.\r\n
        C-PREFIX: AUTH SCRAM
        C-ANY
        EOF
        ",
    )?)?;
    let mut client = Client::connect(server.addr())?;
    assert_eq!(client.line()?, "+OK hi\r\n");
    assert_eq!(client.multiline_raw()?, b"+OK 2 320\r\n.\r\n");
    client.send(b"AUTH SCRAM-SHA-256 biwsbj1h\r\nc2VjcmV0\r\n")?;
    if let ClientStream::Plain(tcp) = client.reader.get_ref() {
        tcp.shutdown(std::net::Shutdown::Write)?;
    }
    assert_eq!(client.rest()?, b"");
    server.finish()?.assert_complete();

    // a server-side close mid-session: the client sees EOF
    let server = ScriptedServer::start(Script::parse("S: +OK\nC: STAT\nCLOSE")?)?;
    let mut client = Client::connect(server.addr())?;
    client.line()?;
    assert_eq!(client.command("STAT")?, "");
    drop(client);
    server.finish()?.assert_complete();
    Ok(())
}

#[test]
fn scripted_one_read_and_quiet() -> TestResult {
    let script = Script::parse(
        r"
        S: +OK ready
        C-ONCE: CAPA\r\nLIST\r\n
        QUIET: 200
        S: +OK
        C: QUIT
        ",
    )?;
    // One write: passes.
    let server = ScriptedServer::start(script.clone())?;
    let mut client = Client::connect(server.addr())?;
    client.line()?;
    client.send(b"CAPA\r\nLIST\r\n")?;
    client.line()?;
    client.send(b"QUIT\r\n")?;
    drop(client);
    server.finish()?.assert_complete();

    // Two writes with a pause: the first read has only the first line.
    let server = ScriptedServer::start(script.clone())?;
    let mut client = Client::connect(server.addr())?;
    client.line()?;
    client.send(b"CAPA\r\n")?;
    std::thread::sleep(Duration::from_millis(100));
    client.send(b"LIST\r\n")?;
    drop(client);
    let transcript = server.finish()?;
    let mismatch = transcript.mismatch().ok_or("no mismatch")?;
    assert_eq!(
        (mismatch.step, mismatch.got.as_slice()),
        (1, &b"CAPA\r\n"[..])
    );

    // A byte sent before the reply breaks the quiet.
    let server = ScriptedServer::start(script)?;
    let mut client = Client::connect(server.addr())?;
    client.line()?;
    client.send(b"CAPA\r\nLIST\r\n")?;
    std::thread::sleep(Duration::from_millis(50));
    client.send(b"QUIT\r\n")?;
    drop(client);
    let transcript = server.finish()?;
    let mismatch = transcript.mismatch().ok_or("no mismatch")?;
    assert_eq!(
        (mismatch.step, mismatch.got.as_slice()),
        (2, &b"QUIT\r\n"[..])
    );
    assert_eq!(mismatch.note, "sent before the reply");
    Ok(())
}

#[test]
fn scripted_drip_and_hang_up() -> TestResult {
    let server = ScriptedServer::start(
        Script::new()
            .drip(b"+OK hello\r\n", 3, Duration::from_millis(10))
            .expect("QUIT"),
    )?;
    let mut client = Client::connect(server.addr())?;
    assert_eq!(client.line()?, "+OK hello\r\n");
    client.send(b"QUIT\r\n")?;
    drop(client);
    let transcript = server.finish()?;
    transcript.assert_complete();
    assert_eq!((transcript.dripped(), transcript.hung_up()), (11, false));

    // A client that hangs up ends an endless drip, and the script, without a mismatch.
    let server = ScriptedServer::start(
        Script::new()
            .send_raw(b"+OK ")
            .drip(&[b'x'; 1000], 1, Duration::from_millis(10))
            .expect("NEVER"),
    )?;
    let mut client = Client::connect(server.addr())?;
    let mut first = [0u8; 5];
    client.reader.read_exact(&mut first)?;
    assert_eq!(&first, b"+OK x");
    drop(client);
    let transcript = server.finish()?;
    assert!(transcript.hung_up(), "{transcript}");
    assert!(!transcript.is_complete());
    assert_eq!(transcript.mismatch(), None);
    assert!(transcript.dripped() < 1000, "{transcript}");
    Ok(())
}

#[test]
fn scripted_finish_async_does_not_block_the_runtime() -> TestResult {
    use std::future::Future as _;
    use std::task::{Context, Waker};

    let server = ScriptedServer::start(Script::parse("S: +OK hi\nC: QUIT\nS: +OK bye")?)?;
    let addr = server.addr();
    let mut waiting = Box::pin(server.finish_async());
    // No client yet: polling returns at once, pending (a blocking wait would hang here).
    let mut cx = Context::from_waker(Waker::noop());
    assert!(waiting.as_mut().poll(&mut cx).is_pending());
    let client = std::thread::spawn(move || -> io::Result<String> {
        let mut client = Client::connect(addr)?;
        client.line()?;
        client.command("QUIT")
    });
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let transcript = runtime.block_on(waiting)?;
    assert_eq!(
        client.join().map_err(|_| "client panicked")??,
        "+OK bye\r\n"
    );
    transcript.assert_complete();
    assert_eq!(transcript.received(), b"QUIT\r\n");
    Ok(())
}

#[test]
fn scripted_without_client_times_out() -> TestResult {
    let server = ScriptedServer::builder(Script::new().send("+OK"))
        .accept_timeout(Duration::from_millis(100))
        .start()?;
    assert!(matches!(server.finish(), Err(KitError::Timeout(_))));
    Ok(())
}

#[test]
fn scripted_stls_switches_at_the_right_byte() -> TestResult {
    let script = Script::parse(
        "
        S: +OK ready
        C: STLS
        S: +OK begin TLS
        STARTTLS
        C: CAPA
        S-RAW: +OK\\r\\nUSER\\r\\n.\\r\\n
        C: QUIT
        S: +OK bye
        ",
    )?;
    let server = ScriptedServer::start(script.clone())?;
    let mut client = Client::connect(server.addr())?;
    client.line()?;
    assert_eq!(client.command("STLS")?, "+OK begin TLS\r\n");
    let mut client = client.start_tls(TestCa::shared().client_config())?;
    client.send(b"CAPA\r\n")?;
    assert_eq!(client.multiline_raw()?, b"+OK\r\nUSER\r\n.\r\n");
    assert_eq!(client.command("QUIT")?, "+OK bye\r\n");
    assert_eq!(client.rest()?, b"");
    let transcript = server.finish()?;
    transcript.assert_complete();
    assert_eq!(transcript.received(), b"STLS\r\nCAPA\r\nQUIT\r\n");
    assert_eq!(transcript.tls_offset(), Some(6));
    assert_eq!(transcript.received_before_tls(), b"STLS\r\n");

    // a client that pipelines past STLS is caught
    let server = ScriptedServer::start(script)?;
    let mut client = Client::connect(server.addr())?;
    client.line()?;
    client.send(b"STLS\r\nCAPA\r\n")?;
    client.line()?;
    let transcript = server.finish()?;
    let mismatch = transcript.mismatch().ok_or("no mismatch")?;
    assert_eq!(mismatch.got, b"CAPA\r\n");
    assert!(mismatch.note.contains("before TLS"), "{mismatch}");
    Ok(())
}

#[test]
fn scripted_implicit_tls_with_trusting_client() -> TestResult {
    let server = ScriptedServer::start_tls(Script::parse("S: +OK tls\nC: QUIT\nS: +OK bye")?)?;
    // trust via the PEM text, as a client configured from a file would
    let pem_file = std::env::temp_dir().join(format!("pop3-tests-ca-{}.pem", std::process::id()));
    TestCa::shared().write_certificate_pem(&pem_file)?;
    let config = client_config_trusting(&pem_file)?;
    std::fs::remove_file(&pem_file)?;
    let mut client = Client::connect_tls(server.addr(), config, "127.0.0.1")?;
    assert_eq!(client.line()?, "+OK tls\r\n");
    assert_eq!(client.command("QUIT")?, "+OK bye\r\n");
    assert_eq!(client.rest()?, b"");
    let transcript = server.finish()?;
    transcript.assert_complete();
    assert_eq!(transcript.tls_offset(), Some(0));
    assert!(certificate_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(certificate_der(), TestCa::shared().certificate_der());
    Ok(())
}

#[test]
fn scripted_untrusted_certificate_is_a_failure() -> TestResult {
    let server = ScriptedServer::start_tls(Script::new().send("+OK"))?;
    let other = TestCa::generate()?;
    let mut client = Client::connect_tls(server.addr(), other.client_config(), "localhost")?;
    assert!(client.line().is_err());
    drop(client);
    let transcript = server.finish()?;
    assert!(!transcript.is_complete());
    assert!(
        transcript.failure().is_some_and(|f| f.contains("TLS")),
        "{transcript}"
    );
    Ok(())
}

#[test]
fn scripted_many_connections() -> TestResult {
    // 200 concurrent sessions, each with its own server thread and client thread. The clients'
    // read timeout is generous (60 s): on a loaded 2-core machine 400 threads can wait seconds
    // for the CPU, and this test is about every session getting its own whole script, not
    // about speed (with 500 sessions and 10 s it failed under load with WouldBlock).
    const N: usize = 200;
    let server = ScriptedServer::builder(Script::parse("S: +OK\nC: NOOP\nS: +OK")?)
        .connections(N)
        .start()?;
    let addr = server.addr();
    let clients: Vec<_> = (0..N)
        .map(|_| {
            std::thread::spawn(move || -> io::Result<String> {
                let mut client = Client::connect_waiting(addr, Duration::from_secs(60))?;
                client.line()?;
                client.command("NOOP")
            })
        })
        .collect();
    for c in clients {
        assert_eq!(c.join().map_err(|_| "client panicked")??, "+OK\r\n");
    }
    let transcripts = server.finish_all()?;
    assert_eq!(transcripts.len(), N);
    for t in &transcripts {
        t.assert_complete();
        assert_eq!(t.received(), b"NOOP\r\n");
    }
    Ok(())
}

// ---------------------------------------------------------------- mailbox

fn login(client: &mut Client) -> io::Result<()> {
    assert!(client.line()?.starts_with("+OK"));
    assert_eq!(client.command("USER alice")?, "+OK send PASS\r\n");
    assert!(client.command("PASS secret-a")?.starts_with("+OK"));
    Ok(())
}

#[test]
fn mailbox_retr_is_dot_stuffed() -> TestResult {
    let message = b"Subject: dots\r\n\r\n.one\r\n..two\r\n.\r\nplain\nbare-lf line\n.".to_vec();
    let server = MailboxServer::start(vec![message.clone()])?;
    let mut client = Client::connect(server.addr())?;
    login(&mut client)?;
    let size = to_crlf(&message).len();
    assert_eq!(client.command("STAT")?, format!("+OK 1 {size}\r\n"));
    client.send(b"RETR 1\r\n")?;
    assert_eq!(client.line()?, format!("+OK {size} octets\r\n"));
    assert_eq!(
        client.multiline_raw()?,
        b"Subject: dots\r\n\r\n..one\r\n...two\r\n..\r\nplain\r\nbare-lf line\r\n..\r\n.\r\n"
    );
    assert!(client.command("QUIT")?.starts_with("+OK"));
    Ok(())
}

#[test]
fn mailbox_generated_mail_round_trips() -> TestResult {
    let messages = generate_mail(5, 2000, 42);
    let server = MailboxServer::start(messages.clone())?;
    let mut client = Client::connect(server.addr())?;
    login(&mut client)?;
    for (i, message) in messages.iter().enumerate() {
        client.send(format!("RETR {}\r\n", i + 1).as_bytes())?;
        assert!(client.line()?.starts_with("+OK"));
        assert_eq!(client.multiline_raw()?, multiline_body(message));
    }
    Ok(())
}

#[test]
fn mailbox_listings_top_dele_and_update() -> TestResult {
    let messages = vec![
        b"Subject: a\r\n\r\nline 1\r\nline 2\r\nline 3\r\n".to_vec(),
        b"Subject: b\r\n\r\nbody\r\n".to_vec(),
        b"Subject: c\r\n\r\nbody\r\n".to_vec(),
    ];
    let server = MailboxServer::start(messages.clone())?;
    let uids = server.uids();
    assert_eq!(uids, ["uid-1", "uid-2", "uid-3"]);

    let mut client = Client::connect(server.addr())?;
    login(&mut client)?;
    client.send(b"LIST\r\n")?;
    let list = client.multiline_raw()?;
    assert_eq!(
        String::from_utf8(list)?,
        format!(
            "+OK 3 messages ({} octets)\r\n1 {}\r\n2 {}\r\n3 {}\r\n.\r\n",
            messages.iter().map(Vec::len).sum::<usize>(),
            messages[0].len(),
            messages[1].len(),
            messages[2].len()
        )
    );
    assert_eq!(
        client.command("LIST 2")?,
        format!("+OK 2 {}\r\n", messages[1].len())
    );
    assert_eq!(client.command("UIDL 3")?, "+OK 3 uid-3\r\n");
    assert_eq!(client.command("LIST 4")?, "-ERR no such message\r\n");
    client.send(b"TOP 1 2\r\n")?;
    assert_eq!(
        client.multiline_raw()?,
        b"+OK top of message follows\r\nSubject: a\r\n\r\nline 1\r\nline 2\r\n.\r\n"
    );
    client.send(b"TOP 1 0\r\n")?;
    assert_eq!(
        client.multiline_raw()?,
        b"+OK top of message follows\r\nSubject: a\r\n\r\n.\r\n"
    );
    assert!(client.command("DELE 2")?.starts_with("+OK"));
    assert_eq!(client.command("RETR 2")?, "-ERR no such message\r\n");
    assert_eq!(client.command("DELE 2")?, "-ERR no such message\r\n");
    client.send(b"UIDL\r\n")?;
    assert_eq!(
        client.multiline_raw()?,
        b"+OK unique-id listing follows\r\n1 uid-1\r\n3 uid-3\r\n.\r\n"
    );
    assert!(client.command("RSET")?.starts_with("+OK maildrop has 3"));
    assert!(client.command("DELE 1")?.starts_with("+OK"));
    assert!(client.command("DELE 3")?.starts_with("+OK"));
    assert_eq!(client.command("NOOP")?, "+OK\r\n");
    // a session that ends without QUIT does not UPDATE
    drop(client);
    let mut other = Client::connect(server.addr())?;
    login(&mut other)?;
    assert!(other.command("DELE 1")?.starts_with("+OK"));
    assert!(other.command("DELE 3")?.starts_with("+OK"));
    assert!(other.command("QUIT")?.starts_with("+OK"));
    assert_eq!(other.rest()?, b"");
    assert_eq!(server.messages(), vec![messages[1].clone()]);
    assert_eq!(server.uids(), ["uid-2"]);

    let mut third = Client::connect(server.addr())?;
    login(&mut third)?;
    assert_eq!(
        third.command("STAT")?,
        format!("+OK 1 {}\r\n", messages[1].len())
    );
    assert_eq!(third.command("UIDL 1")?, "+OK 1 uid-2\r\n");
    assert_eq!(server.logins(), 3);
    // only `other` has ended with QUIT
    assert_eq!(server.quits(), 1);
    Ok(())
}

#[test]
fn mailbox_pipelined_commands_answer_in_order() -> TestResult {
    let server = MailboxServer::start(generate_mail(3, 500, 1))?;
    let mut client = Client::connect(server.addr())?;
    client.line()?;
    client.send(b"USER alice\r\nPASS secret-a\r\nSTAT\r\nLIST 1\r\nRETR 1\r\nNOOP\r\nQUIT\r\n")?;
    assert_eq!(client.line()?, "+OK send PASS\r\n");
    assert!(client.line()?.starts_with("+OK maildrop has 3"));
    assert!(client.line()?.starts_with("+OK 3 "));
    assert!(client.line()?.starts_with("+OK 1 "));
    client.multiline_raw()?;
    assert_eq!(client.line()?, "+OK\r\n");
    assert!(client.line()?.starts_with("+OK pop3-tests signing off"));
    assert_eq!(client.rest()?, b"");
    Ok(())
}

#[test]
fn mailbox_apop_and_auth_plain() -> TestResult {
    let ts = "<1896.697170952@dbc.mtview.ca.us>";
    let server = MailboxServer::builder(generate_mail(1, 300, 1))
        .credentials("mrose", "tanstaaf")
        .apop_timestamp(ts)
        .start()?;
    let mut client = Client::connect(server.addr())?;
    assert_eq!(
        client.line()?,
        format!("+OK pop3-tests server ready {ts}\r\n")
    );
    assert!(
        client
            .command("APOP mrose 00000000000000000000000000000000")?
            .starts_with("-ERR [AUTH]")
    );
    // the RFC 1939 example digest
    assert!(
        client
            .command("APOP mrose c4c9334bac560ecc979e58001b3e22fb")?
            .starts_with("+OK")
    );

    let mut client = Client::connect(server.addr())?;
    client.line()?;
    let ir = BASE64.encode(b"\0mrose\0tanstaaf");
    assert!(
        client
            .command(&format!("AUTH PLAIN {ir}"))?
            .starts_with("+OK maildrop")
    );

    let mut client = Client::connect(server.addr())?;
    client.line()?;
    assert_eq!(client.command("AUTH PLAIN")?, "+ \r\n");
    assert!(
        client
            .command(&BASE64.encode(b"\0mrose\0wrong"))?
            .starts_with("-ERR [AUTH]")
    );
    assert_eq!(client.command("AUTH PLAIN")?, "+ \r\n");
    assert_eq!(client.command("*")?, "-ERR authentication cancelled\r\n");
    assert_eq!(client.command("AUTH PLAIN")?, "+ \r\n");
    assert!(
        client
            .command(&BASE64.encode(b"mrose\0mrose\0tanstaaf"))?
            .starts_with("+OK")
    );

    // a fresh timestamp per connection by default
    let server = MailboxServer::start(Vec::new())?;
    let mut client = Client::connect(server.addr())?;
    let greeting = client.line()?;
    let ts =
        &greeting[greeting.find('<').ok_or("no timestamp")?..greeting.find('>').ok_or("no >")? + 1];
    let digest = format!("{:x}", Md5::digest(format!("{ts}secret-a").as_bytes()));
    assert!(
        client
            .command(&format!("APOP alice {digest}"))?
            .starts_with("+OK maildrop has 0")
    );
    Ok(())
}

#[test]
fn mailbox_capa_and_quirk_switches() -> TestResult {
    let server = MailboxServer::builder(generate_mail(2, 400, 3))
        .stls()
        .start()?;
    let mut client = Client::connect(server.addr())?;
    client.line()?;
    client.send(b"CAPA\r\n")?;
    let capa = String::from_utf8(client.multiline_raw()?)?;
    for cap in [
        "\r\nPIPELINING\r\n",
        "\r\nTOP\r\n",
        "\r\nUIDL\r\n",
        "\r\nUSER\r\n",
        "\r\nSASL PLAIN\r\n",
        "\r\nSTLS\r\n",
    ] {
        assert!(capa.contains(cap), "{cap:?} missing in {capa:?}");
    }

    let server = MailboxServer::builder(generate_mail(2, 400, 3))
        .no_capa()
        .start()?;
    let mut client = Client::connect(server.addr())?;
    client.line()?;
    assert!(client.command("CAPA")?.starts_with("-ERR"));

    let messages = generate_mail(1, 400, 3);
    let server = MailboxServer::builder(messages.clone()).bare_lf().start()?;
    let mut client = Client::connect(server.addr())?;
    assert!(client.line()?.ends_with(">\n"));
    assert_eq!(client.command("USER alice")?, "+OK send PASS\n");
    assert!(client.command("PASS secret-a")?.ends_with(")\n"));
    client.send(b"RETR 1\r\n")?;
    let body = client.multiline_raw()?;
    assert!(!body.contains(&b'\r'));
    assert!(body.ends_with(b"\n.\n"));
    let expected: Vec<u8> = multiline_body(&messages[0])
        .into_iter()
        .filter(|&b| b != b'\r')
        .collect();
    assert!(body.ends_with(&expected));
    Ok(())
}

#[test]
fn mailbox_drops_in_the_middle_of_a_body() -> TestResult {
    let server = MailboxServer::builder(generate_mail(3, 4000, 9))
        .drop_in_retr(2)
        .start()?;
    let mut client = Client::connect(server.addr())?;
    login(&mut client)?;
    client.send(b"RETR 1\r\n")?;
    client.multiline_raw()?;
    client.send(b"DELE 1\r\nRETR 2\r\n")?;
    assert!(client.line()?.starts_with("+OK"));
    assert!(client.line()?.starts_with("+OK"));
    let rest = client.rest()?;
    assert!(
        rest.len() > 1000 && !rest.ends_with(b"\r\n.\r\n"),
        "{} bytes",
        rest.len()
    );
    // no UPDATE
    assert_eq!(server.messages().len(), 3);
    Ok(())
}

#[test]
fn mailbox_reply_delay_and_lock() -> TestResult {
    let server = MailboxServer::builder(Vec::new())
        .reply_delay(Duration::from_millis(50))
        .exclusive_lock()
        .start()?;
    let started = std::time::Instant::now();
    let mut first = Client::connect(server.addr())?;
    login(&mut first)?;
    assert!(started.elapsed() >= Duration::from_millis(150));
    let mut second = Client::connect(server.addr())?;
    second.line()?;
    second.command("USER alice")?;
    assert!(
        second
            .command("PASS secret-a")?
            .starts_with("-ERR [IN-USE]")
    );
    assert!(first.command("QUIT")?.starts_with("+OK"));
    first.rest()?;
    second.command("USER alice")?;
    assert!(second.command("PASS secret-a")?.starts_with("+OK"));
    Ok(())
}

#[test]
fn mailbox_tls_stls_and_implicit() -> TestResult {
    let messages = generate_mail(2, 800, 5);
    let server = MailboxServer::builder(messages.clone()).stls().start()?;
    let mut client = Client::connect(server.addr())?;
    client.line()?;
    assert_eq!(client.command("STLS")?, "+OK begin TLS negotiation\r\n");
    let mut client = client.start_tls(TestCa::shared().client_config())?;
    client.send(b"CAPA\r\n")?;
    let capa = String::from_utf8(client.multiline_raw()?)?;
    assert!(!capa.contains("STLS"), "{capa}");
    assert!(client.command("STLS")?.starts_with("-ERR"));
    login_after_greeting(&mut client)?;
    client.send(b"RETR 2\r\n")?;
    client.line()?;
    assert_eq!(client.multiline_raw()?, multiline_body(&messages[1]));
    assert!(client.command("QUIT")?.starts_with("+OK"));
    assert_eq!(client.rest()?, b"");

    let server = MailboxServer::builder(messages).implicit_tls().start()?;
    let mut client =
        Client::connect_tls(server.addr(), TestCa::shared().client_config(), "localhost")?;
    login(&mut client)?;
    assert!(client.command("STAT")?.starts_with("+OK 2 "));
    Ok(())
}

fn login_after_greeting(client: &mut Client) -> io::Result<()> {
    assert_eq!(client.command("USER alice")?, "+OK send PASS\r\n");
    assert!(client.command("PASS secret-a")?.starts_with("+OK"));
    Ok(())
}

#[test]
fn mailbox_many_concurrent_sessions() -> TestResult {
    const N: usize = 100;
    let server = MailboxServer::start(generate_mail(3, 1000, 11))?;
    let addr = server.addr();
    let clients: Vec<_> = (0..N)
        .map(|_| {
            std::thread::spawn(move || -> io::Result<Vec<u8>> {
                let mut client = Client::connect(addr)?;
                login(&mut client)?;
                client.send(b"RETR 3\r\n")?;
                client.line()?;
                let body = client.multiline_raw()?;
                client.command("QUIT")?;
                Ok(body)
            })
        })
        .collect();
    let expected = multiline_body(&generate_mail(3, 1000, 11)[2]);
    for c in clients {
        assert_eq!(c.join().map_err(|_| "client panicked")??, expected);
    }
    assert_eq!(server.connections(), N);
    Ok(())
}

// ---------------------------------------------------------------- interop

/// Exercises the Dovecot peer plumbing (env variables, certificate) that
/// the client suites use; skipped unless the peer runs (see `interop`).
#[test]
fn dovecot_peer_answers() -> TestResult {
    let Some(peer) = DovecotPeer::from_env() else {
        return Ok(());
    };
    let mut client = Client::connect(peer.addr())?;
    let greeting = client.line()?;
    assert!(
        greeting.starts_with("+OK") && greeting.contains('<'),
        "{greeting}"
    );
    client.send(b"CAPA\r\n")?;
    let capa = String::from_utf8(client.multiline_raw()?)?;
    assert!(capa.contains("\r\nSTLS\r\n"), "{capa}");
    assert!(capa.contains("\r\nPIPELINING\r\n"), "{capa}");
    assert_eq!(client.command("STLS")?.get(..3), Some("+OK"));
    let mut client = client.start_tls(peer.client_config()?)?;
    let (user, password) = interop::DOVECOT_USERS[1];
    assert_eq!(client.command(&format!("USER {user}"))?, "+OK\r\n");
    assert!(
        client
            .command(&format!("PASS {password}"))?
            .starts_with("+OK")
    );
    assert!(client.command("STAT")?.starts_with("+OK "));
    assert!(client.command("QUIT")?.starts_with("+OK"));

    let mut client = Client::connect_tls(peer.tls_addr(), peer.client_config()?, "127.0.0.1")?;
    assert!(client.line()?.starts_with("+OK"));
    assert!(client.command("QUIT")?.starts_with("+OK"));
    assert!(peer.maildir(user).join("new").is_dir() || peer.maildir(user).join("cur").is_dir());
    Ok(())
}

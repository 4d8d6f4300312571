//! rust-hello: a Cloudport sample on the standard library alone. Listens on
//! $PORT, answers GET / with its name (plus $GREETING when set) and
//! GET /healthz with "ok", and prints one line per request to stdout.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};

fn main() {
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".into());
    let listener = TcpListener::bind(("127.0.0.1", port.parse::<u16>().expect("PORT is a port number")))
        .expect("listen on $PORT");
    println!("rust-hello listening on {port}");
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || answer(stream));
    }
}

fn answer(stream: TcpStream) {
    let mut reader = BufReader::new(&stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    // The rest of the head is read and ignored; the samples send no bodies.
    let mut header = String::new();
    while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
        header.clear();
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    println!("request GET {path}");
    let body = if path == "/healthz" {
        "ok\n".to_string()
    } else {
        match std::env::var("GREETING") {
            Ok(g) if !g.is_empty() => format!("rust-hello sample\n{g}\n"),
            _ => "rust-hello sample\n".to_string(),
        }
    };
    let _ = write!(
        &stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

//! docker-py's credential client (Debian python3-dockerpycreds), a client nobody here wrote,
//! stores and reads through the helper.

use crate::common;

use common::{TestHome, assert_success, require, stdout};

const CLIENT: &str = r#"
import os, sys, dockerpycreds
store = dockerpycreds.Store('imgctl')
secret = os.environ['TEST_SECRET']
store.store(server='https://dockerpy.example.com:5000', username='alice', secret=secret)
got = store.get('dockerpy.example.com:5000')
assert got['Username'] == 'alice', got['Username']
assert got['Secret'] == secret, 'secret differs'
store.store(server='https://index.docker.io/v1/', username='<token>', secret=secret[::-1])
assert store.get('docker.io')['Secret'] == secret[::-1]
store.erase('https://dockerpy.example.com:5000')
try:
    store.get('https://dockerpy.example.com:5000')
    sys.exit('still there after erase')
except dockerpycreds.errors.CredentialsNotFound:
    pass
store.erase('https://never-stored.example.com')  # must not raise
try:
    store.store(server='', username='alice', secret='x')
    sys.exit('an empty server was accepted')
except dockerpycreds.errors.StoreError as e:
    assert 'no credentials server URL' in str(e), str(e)
print('ok')
"#;

#[test]
fn docker_py_credential_client_round_trip() {
    require("python3", "python3");
    let python = "/usr/bin/python3"; // Debian's, where python3-dockerpycreds installs.
    let mut home = TestHome::new("dockerpy");
    let secret = home.secret("dockerpy-€-secret");
    let probe = home.command(python).args(["-c", "import dockerpycreds"]).output().unwrap();
    assert!(probe.status.success(), "python3-dockerpycreds is missing (tests/setup.sh installs it)");
    let out = home.command(python).args(["-c", CLIENT]).env("TEST_SECRET", &secret).output().unwrap();
    assert_success(&out, "the docker-py client");
    assert_eq!(stdout(&out), "ok\n");
    // What docker-py stored is what the helper serves to anyone else.
    let hub = home.get("https://index.docker.io/v1/").unwrap();
    assert_eq!(hub["Username"], "<token>");
    assert_eq!(hub["Secret"], secret.chars().rev().collect::<String>().as_str());
}

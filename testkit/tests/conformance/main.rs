//! Conformance tests: the fakes against real clients (`kubectl`, kube-rs, the official DataRobot
//! Python client) and the sandbox binary end to end. One test binary, one module per subject.

mod datarobot_python;
mod exec;
mod krew;
mod kubectl;
mod kubectl_create;
mod sandbox;
mod shell_loop;

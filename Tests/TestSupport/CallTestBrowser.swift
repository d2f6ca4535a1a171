import Foundation
import Glibc

/// The call test page (`turnkeeper run` at /calltest/, or `turnkeeper calltest --out` behind a web server)
/// as a user runs it: headless Chromium in a NAT lab namespace opens the page, fills in the form, presses
/// Start and waits for the page to say it is done.
public enum CallTestBrowser {
    public struct Run: Decodable, Sendable, CustomStringConvertible {
        /// The homeserver field as the page pre-filled it.
        public let prefilled: String
        /// `window.turnkeeperCallTest.report`, as JSON text.
        public let report: String
        /// What the page shows: the status line, the findings list, the report for the admin.
        public let status: String
        public let findings: String
        public let reportText: String
        /// The browser console's errors (a Content-Security-Policy violation shows here).
        public let console: [String]
        /// The Content-Security-Policy header the page came with.
        public let policy: String?

        public var description: String {
            "status: \(status)\nfindings: \(findings)\nreport: \(reportText)\nconsole: \(console)\npolicy: "
                + (policy ?? "none")
        }

        public var object: [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data(report.utf8)) as? [String: Any]) ?? [:]
        }

        /// The report's per-URI results.
        public var uris: [[String: Any]] { object["uris"] as? [[String: Any]] ?? [] }
        public var findingCodes: [String] {
            (object["findings"] as? [[String: Any]] ?? []).compactMap { $0["code"] as? String }
        }
    }

    /// Runs the page at `url` from `host`; `password` reaches the driver on standard input.
    public static func run(
        _ lab: NATLab, host: String, url: String, user: String, password: String
    ) throws -> Run {
        for path in ["/usr/bin/chromium", "/usr/bin/chromedriver"] where access(path, X_OK) != 0 {
            throw TestFailure("\(path) is missing: apt-get install chromium chromium-driver (scripts/test.sh does)")
        }
        let name = "calltest-\(host)-\(UUID().uuidString.prefix(6))"
        let driver = try lab.directory.write("\(name).py", Self.driver)
        let input = String(
            decoding: try JSONSerialization.data(withJSONObject: [url, user, password]), as: UTF8.self)
        let argv = lab.argv(host, [try SynapseServer.python(), driver, lab.directory.file("\(name)-profile")])
        let output = try ProcessRunner.run(argv[0], Array(argv.dropFirst()), stdin: input, timeout: .seconds(400))
        guard output.status == 0, let line = output.stdout.split(separator: "\n").last(where: { $0.hasPrefix("{") })
        else {
            throw TestFailure("the call test page's driver failed: \(output)")
        }
        return try JSONDecoder().decode(Run.self, from: Data(line.utf8))
    }

    /// Waits for the page's server (bounded), then drives the page; every wait has a bound.
    static let driver = """
        import json, sys, time, urllib.request
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        profile = sys.argv[1]
        url, user, password = json.loads(sys.stdin.read())
        policy = None
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    policy = response.headers.get("Content-Security-Policy")
                    break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

        options = webdriver.ChromeOptions()
        for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--user-data-dir=" + profile, "--no-first-run"]:
            options.add_argument(flag)
        options.binary_location = "/usr/bin/chromium"
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        try:
            driver.get(url)
            field = driver.find_element(By.ID, "homeserver")
            # config.json arrives after the page: wait for the field to be filled, briefly.
            try:
                WebDriverWait(driver, 10).until(lambda d: field.get_attribute("value"))
            except Exception:
                pass
            prefilled = field.get_attribute("value")
            driver.find_element(By.ID, "user").send_keys(user)
            driver.find_element(By.ID, "password").send_keys(password)
            driver.find_element(By.ID, "start").click()
            WebDriverWait(driver, 300, poll_frequency=0.2).until(
                lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "done")
            report = driver.execute_script("return JSON.stringify(window.turnkeeperCallTest.report)")
            console = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
            print(json.dumps({
                "prefilled": prefilled, "report": report,
                "status": driver.find_element(By.ID, "status").text,
                "findings": driver.find_element(By.ID, "findings").text,
                "reportText": driver.find_element(By.ID, "report").get_attribute("value"),
                "console": console, "policy": policy}))
        finally:
            driver.quit()
        """
}

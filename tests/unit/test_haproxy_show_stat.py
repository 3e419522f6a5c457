"""``show stat`` CSV as HAProxy writes it: a field with a comma or a quote is quoted
(``"..."``, quotes doubled). last_chk holds a server's own words (an HTTP check's
reason phrase), so a backend in discovery can put anything there."""

from lbctl.targets.haproxy.ctl import parse_stat

HEADER = "# pxname,svname,scur,status,check_status,check_code,last_chk,weight,"


def test_a_quoted_last_check_keeps_its_commas_and_quotes_and_the_columns_after_it():
    reason = '"><img src=x onerror="window.pwned=1">, \'<svg onload=1>'
    quoted = '"' + reason.replace('"', '""') + '"'
    text = f"{HEADER}\napp,app-h,3,DOWN,L7STS,503,{quoted},1,\napp,app-a,0,UP,L7OK,200,OK,1,\n"
    servers = parse_stat(text)["app"]
    assert servers["app-h"] == {"live": "down", "status": "DOWN", "check": f"L7STS 503: {reason}", "sessions": 3}
    assert servers["app-a"]["check"] == "L7OK 200: OK"

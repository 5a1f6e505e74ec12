package integrations

import "github.com/labstack/echo/v5"

// routePagerDuty registers the route(s) of this tool. STUB: being written.
func (r *Routes) routePagerDuty(e *echo.Echo) {}
